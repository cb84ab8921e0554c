"""The line runtime's pipeline: stages on threads with bounded queues, assembled by :class:`LineRuntime`."""
