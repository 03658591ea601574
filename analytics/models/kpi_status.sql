-- KPI status per run x policy over all its suites, for the KPIs of seeds/kpis.csv: the per-request KPIs of
-- configs/kpis.yaml (ROUGE-L mean, error rate) and the SLO's p95 E2E bound. `ttc check` stays the CI gate (it
-- also has capacity and regression KPIs); this table feeds SQL dashboards. A KPI without data is `skip`.
with per_policy as (
    select
        run_id,
        policy,
        count(*) filter (where status = 'error') / count(*) as error_rate,
        quantile_cont(e2e_s, 0.95) filter (where status = 'ok') as e2e_p95_s,
        avg(metric_rouge_l) filter (where not isnan(metric_rouge_l)) as rouge_l_mean
    from {{ ref('measured_requests') }}
    group by all
),
long as (
    unpivot per_policy on error_rate, e2e_p95_s, rouge_l_mean into name metric value actual
)
select
    l.run_id,
    l.policy,
    k.kpi,
    k.metric,
    l.actual,
    k.op,
    k.value as required,
    case
        when l.actual is null then 'skip'
        when k.op = '<' and l.actual < k.value then 'pass'
        when k.op = '<=' and l.actual <= k.value then 'pass'
        when k.op = '>' and l.actual > k.value then 'pass'
        when k.op = '>=' and l.actual >= k.value then 'pass'
        else 'fail'
    end as status
from {{ ref('kpis') }} k
join long l on l.metric = k.metric
order by l.run_id, l.policy, k.kpi
