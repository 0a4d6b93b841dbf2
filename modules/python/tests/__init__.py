# The SDK's tests: `python3 -m unittest discover -s modules/python/tests -t modules/python`
# from the repository root, or `python3 -m unittest` from modules/python.
