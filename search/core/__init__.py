"""Settings: the config dataclasses' defaults < configs/*.yaml < the command line, into typed Settings; the
search space parsed once into Rules (dotted names end to end); the flags the commands share; provenance.

It may import configs/, data_pipeline/, models/ and search.engine (for TrainConfig).
"""
