//! GGUF v3 writer.
