//! Surface syntax: the lossless lexer, the syntax tree and the error-recovering parser.

pub mod ast;
pub mod lexer;
pub mod parser;
