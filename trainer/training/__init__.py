"""Training of the event models, in parts (:func:`trainer.train.train` ties them)."""
