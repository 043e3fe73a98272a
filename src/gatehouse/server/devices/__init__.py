"""Machine licensing: devices, licenses, activation, verification, license files."""
