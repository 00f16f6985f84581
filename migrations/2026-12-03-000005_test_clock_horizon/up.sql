-- The due-work sweep bounds its scan by the largest test-clock offset (`max(offset_seconds)`,
-- with test clocks enabled). Without an index that was a scan of every clock on each sweep:
-- 36 ms with 30,000 clocks in the renewal-storm benchmark (docs/BENCHMARKS.md, item 25).
CREATE INDEX test_clocks_offset_idx ON test_clocks (offset_seconds);
