DROP TABLE sandbox_calls;
