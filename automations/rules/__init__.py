"""Rules: the Rule base, the registry, and the built-in rule types."""
