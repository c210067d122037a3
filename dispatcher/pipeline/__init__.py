"""The deliveries table's state machine."""
