-- Every stored request (one row per request, its final attempt), every run of the store, sharded or not (the
-- folder name is the run; `_`-prefixed manifests are not read). run_id comes from the Hive folder name, always as
-- text; union_by_name reads stores written before a column existed (the column is NULL there).
select *
from read_parquet(
    '{{ var("results") }}/*/*.parquet',
    hive_partitioning = true,
    hive_types = {'run_id': varchar},
    union_by_name = true
)
