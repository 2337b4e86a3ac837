"""What the unit tests and the bench share: fakes of the AWS APIs the functions call, and builders of the events
API Gateway sends them."""
