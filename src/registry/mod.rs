//! Registry client: references, auth, pull and push over the distribution HTTP API.
