-- The requests `ttc summary` groups: everything but capacity probes (summarised as capacities, not latencies).
select *
from {{ ref('requests') }}
where phase is null or phase not like 'capacity%'
