-- Per run x policy x suite (x load level of a sweep): the counts, error rate, latency percentiles and output
-- tokens of `ttc summary --format json`'s groups. Percentiles are over the successful requests, linearly
-- interpolated (quantile_cont), as `ttc` computes them; output tokens count successful requests.
select
    run_id,
    policy,
    suite,
    offered_rate,
    concurrency_level,
    count(*) as n,
    count(*) filter (where status = 'ok') as n_ok,
    count(*) filter (where status = 'error') as n_error,
    count(*) filter (where status = 'error') / count(*) as error_rate,
    quantile_cont(ttft_s, 0.5) filter (where status = 'ok') as ttft_p50_s,
    quantile_cont(ttft_s, 0.95) filter (where status = 'ok') as ttft_p95_s,
    quantile_cont(e2e_s, 0.5) filter (where status = 'ok') as e2e_p50_s,
    quantile_cont(e2e_s, 0.95) filter (where status = 'ok') as e2e_p95_s,
    quantile_cont(e2e_s, 0.99) filter (where status = 'ok') as e2e_p99_s,
    avg(e2e_s) filter (where status = 'ok') as e2e_mean_s,
    coalesce(sum(output_tokens) filter (where status = 'ok' and e2e_s is not null), 0)::bigint as output_tokens,
    min(run_started_at) as run_started_at
from {{ ref('measured_requests') }}
group by all
