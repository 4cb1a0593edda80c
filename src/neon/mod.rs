//! The Neon API v2 client: models, requests, retry policy, operation polling.
