"""What tests, benchmarks and the demo share: sample webhooks shaped after the vendors' documents, and
a TCP proxy that can cut a link. Never imported by the running pipeline."""
