-- Per run x policy x suite (x load level) x quality metric: how many requests have a value and their mean, as the
-- `quality` point estimates of `ttc summary` (NaN scores are left out, as there). One row per metric column
-- (`metric_<name>`) that has values.
with long as (
    unpivot (
        select run_id, policy, suite, offered_rate, concurrency_level, columns('^metric_')
        from {{ ref('measured_requests') }}
    )
    on columns('^metric_')
    into name metric value value
)
select
    run_id,
    policy,
    suite,
    offered_rate,
    concurrency_level,
    substr(metric, length('metric_') + 1) as metric,
    count(*) as n,
    avg(value) as mean
from long
where not isnan(value)
group by all
