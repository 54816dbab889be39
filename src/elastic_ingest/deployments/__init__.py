"""What `make run` and `make deploy` execute: the first-run experience and deployment setup."""
