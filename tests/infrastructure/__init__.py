"""Infrastructure tests: synthesize the CDK stack per environment and assert on the CloudFormation template."""
