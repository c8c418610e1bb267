-- Guard policies per API key: {"input": "pii=block", "output": "...", "retrieved": "..."} in the one-line policy
-- syntax of flotilla/guardpolicy.py, each stage laid rule by rule over the gateway's policy for that stage
-- (which itself lies over the guard's defaults). NULL: the gateway's policies as they are.
ALTER TABLE api_keys ADD COLUMN guard_policy jsonb;
