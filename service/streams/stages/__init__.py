"""The agents, one module per stage of the data flow (see `service.streams`)."""
