"""Scripts that train the course's reference models (`dlcourse train-reference NAME`).

Each module here takes its model classes from the instructor notebook (`dlcourse.notebook`), so
the weights in weights/ always belong to the solution students are compared against.
"""
