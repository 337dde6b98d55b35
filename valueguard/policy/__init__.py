"""The policy layer: a policy is data (YAML validated by pydantic). model.py: Policy, Rule, Decision; conditions/:
the Condition union, one class per condition form; loading.py: the YAML loader with file:line errors and its
limits; profiles.py: value profiles (a target per profile) and a response's distance from one."""
