//! The deterministic layer tar writer: the only way bytes become a layer.
