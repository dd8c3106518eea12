"""What the stages keep and read besides Faust's tables (see `service.streams`)."""
