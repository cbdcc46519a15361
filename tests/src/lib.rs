//! End-to-end test support lives in the `e2e` test binary.
