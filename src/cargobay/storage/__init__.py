"""Storage drivers and the one module that knows where everything lives (`layout`)."""
