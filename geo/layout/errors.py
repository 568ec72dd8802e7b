"""Why a LIF file is refused: one exception class per kind of fault.

Every error carries the element it is about as attributes (the file, the layout id, the
kind and id of the element, a JSON path into the file) and the reason, so a caller can
report or test them without parsing the message.
"""

from __future__ import annotations


class LayoutError(Exception):
    """A layout file that fleetd cannot use.

    ``element`` is the kind of element at fault (``file``, ``layout``, ``node``, ``edge``,
    ``station``), ``element_id`` its id when it has one, ``json_path`` where it sits in the
    file (``$.layouts[0].edges[3].endNodeId``) and ``reason`` what is wrong with it.
    ``also`` holds further problems found in the same file, reported after this one.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str = "",
        element: str = "file",
        element_id: str | None = None,
        layout_id: str | None = None,
        json_path: str = "$",
    ) -> None:
        self.reason = reason
        self.source = source
        self.element = element
        self.element_id = element_id
        self.layout_id = layout_id
        self.json_path = json_path
        self.also: tuple[LayoutError, ...] = ()
        super().__init__(reason)

    def describe(self) -> str:
        """One line naming the file, the element and the reason."""
        where = [self.source] if self.source else []
        if self.layout_id is not None:
            where.append(f"layout {self.layout_id!r}")
        if self.element_id is not None:
            where.append(f"{self.element} {self.element_id!r}")
        where.append(self.json_path)
        return f"{', '.join(where)}: {self.reason}"

    def __str__(self) -> str:
        more = f" (and {len(self.also)} more problem(s))" if self.also else ""
        return self.describe() + more


class LayoutSyntaxError(LayoutError):
    """The file is unreadable or not JSON."""


class LayoutSchemaError(LayoutError):
    """The document violates the LIF 1.0 JSON schema."""


class DuplicateIdError(LayoutError):
    """Two layouts, nodes, edges or stations share an id (LIF section 8.2)."""


class DanglingReferenceError(LayoutError):
    """An edge or station names a node the file does not have."""


class InvalidElementError(LayoutError):
    """An element is well-formed but unusable (e.g. a trajectory whose knots do not fit)."""


class UnreachableStationError(LayoutError):
    """For some vehicle type, a station cannot be reached from the rest of the graph."""


class OneWayTrapError(LayoutError):
    """For some vehicle type, a station can be entered but the way back out is missing."""


class UnknownNodeError(LayoutError):
    """A route or matrix was asked for a node the route graph does not have."""
