"""Study helpers: find what a folder tree holds, and write the jobs and configs to run.

``dynaclr discover``, ``dynaclr generate-predict-scripts`` and ``dynaclr
generate-fit-config``; one module each.
"""
