"""Progressive delivery of a ModelDeployment's canary: pure check evaluation and the step machine."""
