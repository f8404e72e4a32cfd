"""`in` on integer columns, bounded like Django's own exact/gt/lt lookups: a value no integer
column can hold (a 30-digit `_selected_action` or list-editable row id posted to the admin)
matches nothing, instead of failing in the database driver (SQLite: OverflowError)."""

from django.db.models import IntegerField
from django.db.models.lookups import In


@IntegerField.register_lookup
class IntegerFieldIn(In):
    def process_rhs(self, compiler, connection):
        if self.rhs_is_direct_value():
            low, high = connection.ops.integer_field_range(self.lhs.output_field.get_internal_type())
            self.rhs = [
                value for value in self.rhs
                if not isinstance(value, int) or ((low is None or value >= low) and (high is None or value <= high))
            ]
        return super().process_rhs(compiler, connection)
