-- Each policy x suite across runs, oldest first, with the change from its previous run: the trend view of the
-- dashboard in SQL. ROUGE-L stands in for quality (the default KPIs gate on it); policy_quality has every metric.
with q as (
    select run_id, policy, suite, offered_rate, concurrency_level, mean as rouge_l
    from {{ ref('policy_quality') }}
    where metric = 'rouge_l'
)
select
    s.run_started_at,
    s.run_id,
    s.policy,
    s.suite,
    s.offered_rate,
    s.concurrency_level,
    s.n,
    s.error_rate,
    s.e2e_p95_s,
    q.rouge_l,
    s.e2e_p95_s - lag(s.e2e_p95_s) over w as e2e_p95_s_change,
    q.rouge_l - lag(q.rouge_l) over w as rouge_l_change,
    s.error_rate - lag(s.error_rate) over w as error_rate_change
from {{ ref('policy_summary') }} s
left join q
    on q.run_id = s.run_id and q.policy = s.policy and q.suite = s.suite
    -- the load level is NULL outside sweeps: NULL matches NULL here
    and q.offered_rate is not distinct from s.offered_rate
    and q.concurrency_level is not distinct from s.concurrency_level
window w as (
    partition by s.policy, s.suite, s.offered_rate, s.concurrency_level
    order by s.run_started_at, s.run_id
)
order by s.policy, s.suite, s.run_started_at, s.run_id
