"""recipe-outbound: shares recipes and their orders with the systems that manufacture them."""
