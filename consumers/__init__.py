"""Service side of the bus: the consumer runtime, service stores and rules, and the tracker."""
