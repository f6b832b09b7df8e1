"""The bottom layer of sweetspot: the shipped YAML configs, the one error type (configs.errors) and the
typed-config helpers (configs.typed). It imports nothing else of this project; everything else may
import it."""
