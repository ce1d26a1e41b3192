//! Job-level errors and their exit codes.
