"""Settings: the config dataclasses' defaults < configs/*.yaml < the command line, into typed Settings; the
search space parsed once into Rules (dotted names end to end); the flags the commands share; provenance;
what a served predictor's probabilities are (served.py: the seed mean and the ensemble's weighted mean, for
both the report and search.predict).

It may import configs/, data_pipeline/, models/ and search.engine (for TrainConfig).
"""
