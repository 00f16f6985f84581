DROP INDEX test_clocks_offset_idx;
