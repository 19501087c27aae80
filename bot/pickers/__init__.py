"""Names for the pickers: what forge knows, filtered as someone types."""
