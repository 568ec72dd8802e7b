"""The offline evaluation (``fleetd sim evaluate``): the dispatch engine on a simulated clock."""
