"""The subscriber domain, shared by the admin API, the delivery workers and the checker: endpoint
normalization, Standard Webhooks signing, the SSRF policy and the hardened HTTP client."""
