"""Debates among agents over a backend: the round loop, its LangGraph engine, the agents and sharding."""
