"""The CDK app: a thin stack composing one construct per concern."""
