"""The SSH engine: one asyncio event loop, bounded fan-out, a result per host."""
