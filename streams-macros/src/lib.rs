//! streams-macros
