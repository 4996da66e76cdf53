"""CRM sync: runs that pull a CRM's changes and push the contacts', on a schedule, when
contacts change, or on demand."""
