"""Mission endpoints (being written; see docs/architecture.md)."""

from fastapi import APIRouter

router = APIRouter()
