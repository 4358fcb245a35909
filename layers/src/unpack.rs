//! Safe extraction of layer tars into a directory (no escapes; whiteouts applied).
