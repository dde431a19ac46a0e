"""lensflow's pipeline layer (config, registry, wiring, runners, CLI)."""
