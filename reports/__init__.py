"""medbench reports: render a run directory to one self-contained HTML file."""
