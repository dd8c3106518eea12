"""What every stage uses and none owns (see `service.streams`)."""
