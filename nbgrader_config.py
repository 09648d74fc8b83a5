# nbgrader looks for this file in the folder it runs in. The course's configuration is course_config.py.
load_subconfig("course_config.py")  # noqa: F821  (provided by traitlets)
