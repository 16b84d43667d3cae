"""Reading, framing and batching speech. Never imports avrnn.models."""
