"""Validate a CycloneDX 1.6 JSON document (argv[1]) against the official schema bundled with
cyclonedx-python-lib (strict: no unknown properties). Exit 1 and print the errors when it is not valid."""
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

with open(sys.argv[1], encoding="utf-8") as f:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(f.read())
if error is not None:
    print(error)
    sys.exit(1)
print("valid CycloneDX 1.6")
