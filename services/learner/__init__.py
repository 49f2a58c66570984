"""Learner service: drives a training run (jobs out, groups in, rewards, advantages,
policy updates, weight publishing, validation, checkpoints). Entry points:
`services.learner.loop.train` (in-process) and `python -m services.learner --config FILE`."""
